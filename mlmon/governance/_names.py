"""Personal names for the ``name`` detector of :mod:`mlmon.governance.deid`.

Frequent given names and surnames of many languages (English, Spanish, Portuguese,
French, German, Dutch, Italian, Nordic, Polish, Irish, Nigerian, Indian, Arabic,
Chinese, Vietnamese, Korean, Japanese, Turkish, Greek). Left out on purpose: words
that are also common English words, clinical terms or brand names (May, June, Will,
Mark, Grace, Hope, Max, Nova, Ward, Brown, White, Young, King, Hill, Dell, Siemens,
Mercedes...), so a kept device name or a short clinical fragment is not taken for a
name. A name outside the lists, with no title or label, is not found (see the limits
in ``docs/samples.md``).
"""

from __future__ import annotations

GIVEN_TEXT = """
aaron abdul abdullah abigail adam adebayo adeola adrian agnieszka ahmad ahmed aidan aiko aisha
akira alan albert alejandra alejandro aleksandra alessandra alessandro alex alexander alexandra
alexis alfonso ali alice alicia alina amanda amar amelia amina amir amit amy ana anastasia
andrea andreas andrei andrew andrzej angela angelika anita anja ann anna anne annika anthony
antoine antonio anya arjun arnaud arthur aryan ashley astrid aurelie ayesha barbara bartosz
beatriz benedikt benjamin bernard bernd bettina betty bianca bjorn brandon brenda brian bridget
bruno camille carla carlos carmen carol caroline carolyn catherine cecile charles charlotte
chen chidi chiara chinedu chioma christian christina christine christoph christopher cian
ciaran claire claudia clement cristina daniel daniela danielle daria david deborah deepak
dennis diana diego dieter dimitri dimitrios dmitri dolores dominik donald donna dorothy
douglas dries dylan edward elena eleni elif elisa elisabeth elizabeth ellen emeka emily emma
emmanuel enrique eric erik erika esther eva fabian fabienne fatima fatma federica felipe
felix fernando fiona florian francesca francesco francisco francois franziska frederik
gabriel gabriela gabriele georg george georgios gerhard giacomo gianluca giorgia giorgos
giovanni giulia giuseppe gonzalo greta guillaume gunther gustavo hana hannah hans harold
harpreet hassan heather heike heinz helen helena hendrik henrik henry hiroshi hugo ibrahim
ifeoma ignacio ines ingrid irene isabel isabella isabelle ivan jacob jacqueline jakub james
 jana jane janet janina jason javier jean jeanne jennifer jens jeroen jessica jiang jin
joanna joao joaquin johan johanna johannes john jonas jonathan jorge jose josef joseph joshua
joyce juan judith julia julian julie julien jurgen justin kamal karen karin karl katarzyna
katharina katherine kathleen kenji kenneth kevin khalid kimberly klaus krishna krzysztof
kwame lars laura laurent lea leila lena leon leonardo liam linda lisa lorenzo lucas lucia
luciana lucie luis luisa lukas lukasz madeleine magdalena mahmoud manuel marco marcus
margaret margarita maria mariana marie marina mario marta martha martin mary mateo matteo
matthew matthias maximilian mehmet mei melissa mia michael michel michelle miguel mikael
mohamed mohammad mohammed monika muhammad mustafa nadia nanami natalia nathalie nicholas
nicolas nicole niklas nikolai nikolaos nina noah noemi nomvula obinna oksana olga olivia
oluwaseun omar oscar oskar pablo pamela paolo patricia patrick paul paula pedro pekka
peter petra philippe pierre pietro piotr pooja priya rachel rafael rahul raj rajesh ramon
raphael raymond rebecca renate ricardo richard robert roberto rodrigo rohan ronald rosa
ruth ryan sabine sabrina sakura salma samir samuel sandra sanjay santiago sara sarah saoirse
sean sebastian sergei sergio shira shreya silvia simon simone siobhan sofia sophia
sophie stefan stefano stephanie stephen steven sunita susan susanne sven takeshi tamara
tanja teresa thomas timothy tobias tomasz ursula valentina valeria vanessa veronica
victor victoria vikram vincent vincenzo walter wei wojciech wolfgang xavier xin yan yasmin
pieter joost sander bram sanne femke lotte anouk daan thijs ruben maarten wouter niels
yara yusuf yuki yusuke zainab zanele zhang zoe zofia
"""

SURNAME_TEXT = """
abubakar adeyemi agarwal ahmed akhtar alvarez anderson andersson antonopoulos bakker
banerjee barbieri becker bernard bertrand bianchi bjork bonnet brouwer bruno castillo
chakraborty chatterjee chaudhry chen chowdhury colombo conti costa cruz dasgupta debroy
dejong delgado devries diaz dimitriou dubois dupont durand eze fernandes fernandez ferrari
fischer fontana fournier galli garcia gomez gonzalez gupta gutierrez haddad hansen hernandez
herrera hoffmann horvath huang hussain ibrahim iyer jansen janssen jimenez johansson johnson
jovanovic kamau kaminski kapoor kaur kelly kennedy khan kim klein koch kowalczyk kowalski
kozlov kumar kuznetsov lambert larsen laurent lefebvre lehmann leroy lewandowski lindqvist
liu lombardi lopez lorenzo mahlangu martinez meier mendoza menon meyer mohamed molina
morales moreau moreno muller murphy mwangi nakamura naidoo nair nguyen nielsen novak
novakova nowak obi odhiambo oduya ogunleye okafor okonkwo okoro olsen oyelaran ozturk
papadopoulos patel pereira perez petersen petrov phan popescu popov rahman ramirez rao
reddy ricci richter rizzo rodriguez romano romero rossi russo sanchez santos sato schmidt
schneider schreiber schulz schwarz sharma shevchenko silva singh sokolov suzuki takahashi
tanaka thompson tran ueda vandenberg vandijk vargas vasquez verma visser wagner walsh
wang weber williams wojcik wong wu yadav yamamoto yilmaz yusuf zhang zhao zhou zimmermann
smith jones taylor davies evans wilson thomas roberts robinson walker wright thompson
jackson harris clarke lewis mitchell turner phillips parker edwards collins stewart morris
murray campbell morgan cooper richardson howard rogers reed watson brooks sanders
bennett james hughes foster sullivan russell ortiz jenkins perry powell butler barnes
fisher henderson coleman simmons patterson jordan reynolds hamilton graham wallace gibson
vries jong boer mulder dekker dijkstra hendriks smit meijer leeuwen vos
mcdonald mckenzie obrien oconnor doyle byrne ryan brennan gallagher kavanagh
"""

#: Lower-case given names and surnames, accents folded (``müller`` -> ``muller``).
GIVEN_NAMES: frozenset[str] = frozenset(GIVEN_TEXT.split())
SURNAMES: frozenset[str] = frozenset(SURNAME_TEXT.split())

# more names: African, Arabic, Persian, South and East Asian, Slavic, Nordic, Baltic,
# Hungarian, Romanian, Greek, Turkish, Pacific, British and Irish
MORE_GIVEN_TEXT = """
abena abimbola adaora adaeze adanna adebola adekunle ademola adesua adewale afia afua
akosua akua amadou amaka amara amari ama ayodele babajide bongani bukola chiamaka chidera
chinonso chinwe chukwudi chukwuemeka dumisani ebele efua ekow esi femi folake funmilayo
gugu ikechukwu ifeanyi jabari kagiso kayode kefilwe kelechi khadija kofi kojo kwabena
kwaku kwesi lindiwe lwazi mandla mbali mpho musa naledi ngozi nkechi nkosana nnamdi
nomsa nomvula nonhlanhla obiageli olamide olumide oluwadamilare oluwatobi palesa sibusiso
sipho siyabonga tendai thabo thandeka thandiwe themba thulani tinuke tunde uchenna yaw
yetunde zodwa amare abebe almaz biruk dawit hiwot kebede meron selam tigist yonas
wanjiru kamau njeri otieno achieng akinyi wambui mwangi muthoni kipchoge
abbas adel adnan ahlam ali aliya amal amina amira anwar ayman bashir bilal dalia dina
faisal farah farid farida fawzi ghada habib hadi hafsa hamid hamza hana hanan haneen
hasan hussein imad iman jamal jamila karim khaled latifa layla lina lubna maha majid
malak mansour mariam marwan maryam mona mounir nabil nadim najib nasser nawal noor nour
omar rami rana rania rashid reem rima saad sabah said saleh salim samer sami samira
sana tarek tariq wael walid yasmin yasser youssef yousef zaid zainab zayd ziad
arash ardeshir babak bahram behnam behrouz dariush darius farhad farhan farzaneh
ghazal hamed hossein kaveh kourosh leila mahnaz mahsa mehdi mehran mina mitra mohsen
morteza nasrin navid negar niloufar parisa parviz payam reza roya saeed sahar sanaz
shirin siavash soraya yasaman
aarav abhishek aditi aditya ajay akash akshay amitabh ananya anil anjali ankit anusha
arun aruna ashok bhavna chandra deepa deepika dev devika dhruv divya gaurav geeta
harish hemant indira ishaan jaya kavita kiran lakshmi madhu mahesh manish manoj meena
meera mohan nandini naveen neha nikhil nisha pallavi pradeep prakash pranav preeti
rajiv rakesh ramesh rani ravi rekha ritu rohit sachin sanjana santosh sarita seema
shalini shankar shanti shivani shweta sneha subhash suresh swati tanvi uma usha varun
vijay vinod vishal yash imran irfan javed nasir rizwan sadia saima shahid shazia tahir
uzma waqar zubair ayesha fahad
an anh bao binh cuong dung duc hai hanh hieu hoa hung huong huy khanh lan linh long
mai minh nam ngoc nhung phuong quang quynh thanh thao thi thuy trang trung tuan tuyet
viet vinh xuan hyun jae jeong ji jihoon jimin jiwoo joon jun kyung min minji minjun
seojun seoyeon soo sung yeon young yuna daiki haruka haruto hina hinata kaito kenta
koji makoto mao masato mei misaki naoki riku ryota sakura shota sota takumi taro tomoya
yui yuto yuna ai bo chao fang feng gang hao hong hui jian jie jing jun lei li lian ling
ming ning ping qiang qing rui shan shu tao ting wen xia xiao xiaoming xin xiu yang yi
ying yong yu yue yun zhen zhi zhong meiling
aleksei aleksandr alexei anatoly andrey artem bogdan boris denis dmitry egor evgeny
fedor gennady grigory igor ilya irina iryna kirill konstantin larisa lyudmila maksim
marina mikhail nadezhda natalya nikita oleg oleksandr oleksiy pavel polina roman ruslan
sergey stanislav svetlana taras tatiana tatyana vadim valentin valery vasily viktor
vitaly vladimir vladislav volodymyr yaroslav yekaterina yulia yuri zhanna
agata andrzej bozena danuta dariusz dorota ewa grazyna grzegorz halina iwona jacek
jadwiga janusz jaroslaw jerzy joanna jolanta kazimierz krystyna leszek malgorzata
marek mariusz miroslaw pawel przemyslaw radoslaw renata slawomir stanislaw tadeusz
teresa urszula wieslaw witold zbigniew zdzislaw
ales bohumil frantisek hana jaroslav jiri josef ladislav lenka lucie marketa miloslav
miroslav ondrej pavla petr radek stanislav tomas vaclav vladimir zdenek
attila balazs bence csaba eszter ferenc gabor gyorgy istvan janos katalin laszlo
marton miklos peter sandor szilvia tamas zoltan zsofia zsuzsanna
adrian alexandru andreea bogdan catalin cristian dan dorin florin gheorghe ioan ioana
ion iulia lucian mihai mihaela mircea nicolae ovidiu radu raluca razvan sorin stefan
teodora valentin vlad
aino eero eino elina hanna heikki ilkka jari jukka juha kaisa kalle kari kirsi liisa
markku matti mika mikko minna niina olli paivi pasi petri riikka sami sanna seppo
tapio teemu timo tuomas tuula ville
anders bjorn britt dag einar eirik elin erik freya frida gunnar halvard hilde ingrid
jonas kari karin kjell knut lars leif liv magnus mats nils ola olav per ragnar rune
siri solveig stig svein tor tore torbjorn trond ulf
andris janis juris laura liga raimonds aivars ausra dalia egle giedre jonas lukas
mindaugas rasa ruta tomas vytautas
anastasios christos dimitra eleftheria evangelos georgia ioannis katerina konstantinos
maria nikos panagiotis sofia spyros stavros theodoros vasileios vasiliki yiannis
ahmet ali ayse aysel berk berna burak can cansu cem deniz derya ebru elif emine emre
esra fatih fatma gizem gul hakan hulya ibrahim ilker kemal kerem merve murat mustafa
nur ozge ozlem selin serkan sevgi tolga tugba ugur volkan yasemin yusuf zehra zeynep
aroha ataahua hemi kahu manaia mere nikau rangi rawiri tama tane wiremu mele sione
tevita salote losana ana kalani keanu leilani makana malia noelani
aidan aileen alistair angus brendan bronagh caitlin callum calum ciara colm conor
declan deirdre diarmuid dermot eamon eilidh eoin fergus fionn grainne hamish iain
isla kieran lachlan mairead niall niamh oisin padraig roisin ruairi seamus shauna
tadhg una alun bethan bryn carys cerys dafydd dylan eira emrys ffion geraint gethin
glyn gwen gwilym huw ieuan iestyn llinos meinir owain rhian rhiannon rhys sian tegan
mateus matheus thiago joao bruna larissa leticia camila fernanda juliana vitoria gustavo
caio vinicius rodrigo renata tatiana priscila
abby alison amber ashley audrey austin beverley bradley brittany caleb cameron carl
chelsea cheryl chloe clara colin connor courtney craig dale darren dawn debbie derek
donna duncan elaine emma ethan evan gavin gemma gordon graham hayden heidi holly ian
jade jamie jared jodie jordan josh karen kayla keith kirsty kyle leah logan lorraine
lucy luke mackenzie megan melanie morgan nathan neil nigel paige rhona ross russell
shane sharon sheila shelley simon stacey stuart tanya tracey trevor tyler vicky wayne
"""

MORE_SURNAME_TEXT = """
abara abiodun adebayo adeleke adeniyi adewale adeyemo afolabi agbaje ajayi akande
akinola akpan alabi asante amoah ampofo appiah asamoah boateng danso darko dlamini
eze ezeh mokoena khumalo mahlaba mabaso mbatha mkhize mthembu ndlovu ngcobo nkosi
nwosu nwachukwu nwankwo obi odunsi ogbonna ogundipe okeke okoye okpara oladipo olawale
onyeka osei owusu oyelaran sithole zulu moyo chikwanha mutasa nyathi banda phiri tembo
mwale kariuki njoroge kimani ochieng onyango wafula wanjala mutua kiprop chebet kiptoo
tesfaye bekele haile girma alemu tadesse mengistu gebre
abdallah abdelaziz abdullah abubakr alfarsi alhashimi alsayed amin aziz bakr barakat
darwish farouk ghanem habibi haddad halabi hamdan hariri hassan hijazi issa jaber
karam kassab khalil khoury mansour masri mousa nassar qasim rahim saab saeed salameh
saleh salem shaheen sharif suleiman tahan yassin yousef zaher zaki benali bennani
alaoui amrani berrada chraibi elidrissi lahlou tazi
ahmadi akbari alavi amini asadi azizi bagheri ebrahimi esfahani farahani ghorbani
hashemi hosseini jafari jahani kamali karimi kazemi khalili mahmoudi mohammadi
mousavi najafi nazari rahimi rahmani rezaei sadeghi salehi shahbazi shirazi
soltani tabatabai tehrani yazdani zamani
agrawal ahuja arora bajaj banerji bansal bhatia bhatt bose chandra chauhan chopra das
desai dubey gandhi ghosh goel goswami iyengar jain jha joshi kapur kaul khanna kulkarni
malhotra mehta mishra mukherjee narayan narayanan nath pandey pillai prasad rajan
rastogi rathore saxena sen seth shah shetty shukla sinha srinivasan subramanian
swamy thakur tiwari trivedi venkatesh krishnan qureshi siddiqui sheikh malik butt
chaudhary hashmi javed raza rizvi zaidi
bui cao dang dinh do duong ha hoang ho huynh lam le luong ly mac ngo pham phung ta
thai trinh truong vo vu
ahn bae baek cha cho choi chung han hong hwang jang jeon jo joo jung kang ko kwon lim
moon nam oh ryu seo shin song yoo yoon
abe aoki endo fujii fujita fukuda goto hasegawa hashimoto hayashi ikeda inoue ishii
ishikawa ito kato kimura kobayashi kondo maeda matsumoto miura mori murakami murata
nakajima nakano nishimura ogawa okada ono saito sakamoto sasaki shimizu takeda
watanabe yamada yamaguchi yamazaki yoshida
cai cao deng ding du fan feng gao guo han he hu jiang lin luo lu ma peng shen song
sun tang xie xu xiao yang ye yu yuan zeng zheng zhu
abramov alekseev andreev antonov baranov belov bogdanov bondarenko borisov
vasiliev volkov vorobyov gavrilov grigoriev egorov zaitsev ivanov ivanova kiselev
kovalenko kovalchuk kozlova kravchenko kuzmin lebedev makarov medvedev melnyk
mikhailov morozov morozova nikolaev novikov orlov pavlov petrova polyakov romanov
semenov sidorov smirnov smirnova sokolova solovyov stepanov tkachenko fedorov
frolov yakovlev shevchuk boyko kravets lysenko marchenko moroz oliynyk
bak dabrowski duda jankowski kaczmarek kalinowski kowalewski krawczyk kubiak
lis majewski mazur michalski nowicki olszewski pawlak piotrowski sikora
stepien szewczyk szymanski wieczorek wisniewski wojciechowski wozniak zajac
zielinski
benes cerny dvorak horak jelinek kral kucera marek novotny pokorny prochazka
ruzicka svoboda vesely zeman
balogh farkas horvath kiss kovacs lakatos meszaros molnar nagy nemeth papp szabo
szilagyi takacs toth varga
constantin dumitru georgescu ionescu marin popa radu stan stoica tudor
halvorsen johannessen karlsen kristiansen lindberg lundgren nilsen nordin nyberg
pedersen rasmussen soderberg svensson eriksson gustafsson jonsson karlsson larsson
lindstrom magnusson nilsson olsson persson
heikkinen hamalainen jarvinen korhonen koskinen laine lehtonen makinen nieminen
virtanen
georgiou ioannou konstantinou nikolaidis papadakis papageorgiou vlachos
aksoy arslan aslan aydin celik demir dogan erdogan kaya kilic koc kurt ozdemir
ozkan polat sahin simsek yildirim yildiz
fifita havili kioa mahe taufa tupou vaipulu ngata parata tawhiri kahale akana keawe
ahern barry boyle brady burke carroll cassidy clancy connolly cullen daly dempsey
dolan donnelly duffy dunne farrell fitzgerald flanagan flynn gallagher geraghty hayes
healy hennessy higgins keane kearney kinsella lynch maguire mahony mcauley mccarthy
mcgrath mcmahon molloy moran mulligan nolan oconnell odonnell okeeffe oneill oreilly
osullivan power quinn regan riordan sheehan sweeney tierney whelan doherty
bowen davies griffiths howells hughes jenkins llewellyn lloyd morgan owen powell
price pritchard prosser rees vaughan watkins
carvalho oliveira souza sousa ferreira almeida ribeiro rodrigues gomes martins araujo
barbosa rocha nascimento moreira cardoso teixeira correia mendes vieira monteiro
cavalcanti azevedo lima pinto dias park lee
abbott ashworth atkinson bailey barker bates bentley bishop blackburn bolton booth
bradshaw briggs bryant burgess burton chambers chapman clayton cole cunningham
dawson dixon dobson ellis farmer fletcher fraser gardner gibbs gilbert goodwin
gordon grant griffin hancock hardy harper harrison hart hawkins hayward henderson
hodgson holland holmes hopkins houghton howe hudson hutchinson ingram jennings kemp
kirby knight lambert lane lawrence lawson lowe marsh marshall mason matthews
mcdonnell mills moss newman nicholson norris oliver osborne palmer payne pearce
pearson perkins pritchard rees richards riley robertson rowe shaw simpson slater
spencer stevens sutton thornton tucker walton warren webb wells west whitaker
whittaker wilkinson willis woods
"""

GIVEN_NAMES = GIVEN_NAMES | frozenset(MORE_GIVEN_TEXT.split())
SURNAMES = SURNAMES | frozenset(MORE_SURNAME_TEXT.split())

#: Names that are also common words (English, or frequent in French, German, Spanish,
#: Italian, Dutch, Portuguese text), units, places or brands: a name only when capitalised
#: and next to another name ("Li Wei", "Marina Costa", "Grant Hamilton"), never alone.
AMBIGUOUS_TEXT = """
isla ruta liga ville mere said dawn jade amber holly hardy grant price power west wells
long young moon song sun shin sung jung hung dung thai viet dang mason hart marsh woods
knight mills moss cole lane rowe booth bishop farmer chambers holland bates spencer
marshall lambert tucker slater sutton warren willis gordon oliver norris newman hopkins
hancock ellis hudson dawson lowe kemp burton bolton bryant barry burke keane lynch hayes
moran nolan sweeney rees morgan bentley jordan chelsea austin georgia sofia victoria
rune mats siri liv per dag tor ola una uma can nur dev das sen bose ion dan lan min mao
tao gang ping ding fan fang goto hemi roman rosa marina clara dolores pierre christian
vos boer jong bakker visser brouwer koch fischer weber richter klein schwarz walker
turner cooper fisher butler parker foster reed brooks sanders watson gibson phillips
campbell hamilton wright perry barnes graham lam nam mai bao hai hoa chandra kiran
ravi rani jaya madhu usha shanti seema neha lima pinto dias park
"""

#: A name's capitalised word followed by one of these (after an optional 's) is an eponym
#: (Wilson's disease, Hashimoto thyroiditis, Murphy's sign), not a person in the record.
_EPONYM_TEXT = """
disease syndrome sign signs test score scale criteria classification catheter procedure
position operation palsy phenomenon reflex maneuver manoeuvre triad node nodes fracture
tube stage grade index method block graft repair cyst tumour tumor anomaly ulcer
sarcoma lymphoma coma regression distribution equation law thyroiditis encephalopathy
disorder deformity contracture stain staining criterion rule formula ratio curve
"""
EPONYM_NOUNS: frozenset[str] = frozenset(_EPONYM_TEXT.split())

#: Surname endings of many languages (Slavic, Greek, Turkish, Armenian, Georgian, Finnish,
#: Persian, Nordic, German): a capitalised word of 6+ letters with one of them is a name.
SURNAME_SUFFIXES = (
    "son",
    "sen",
    "ez",
    "ski",
    "ska",
    "sky",
    "cki",
    "cka",
    "wicz",
    "czyk",
    "ova",
    "ová",
    "ov",
    "ev",
    "eva",
    "enko",
    "chuk",
    "yuk",
    "escu",
    "poulos",
    "opoulou",
    "idis",
    "akis",
    "oglu",
    "oğlu",
    "yan",
    "ovic",
    "evic",
    "ović",
    "ević",
    "vić",
    "ishvili",
    "dze",
    "nen",
    "zadeh",
    "pour",
    "stein",
    "mann",
    "berg",
)
#: Words with those endings that are not names.
_NOT_SURNAMES_TEXT = """
person reason season lesson poison prison comparison garrison unison crimson caisson
venison parson damson treason liaison chosen loosen worsen lessen essen wissen hessen
whisky husky frisky einstein frankenstein liechtenstein iceberg casanova supernova
ericsson improv
"""
NOT_SURNAMES: frozenset[str] = frozenset(_NOT_SURNAMES_TEXT.split())

AMBIGUOUS: frozenset[str] = frozenset(AMBIGUOUS_TEXT.split())
#: Names found in any case (4+ letters, not ambiguous).
ANY_CASE: frozenset[str] = frozenset(
    w for w in GIVEN_NAMES | SURNAMES if len(w) >= 4 and w not in AMBIGUOUS
)
#: Names found only when capitalised (3 letters): Amy, Ali, Kim.
CAPITALISED: frozenset[str] = frozenset(
    w for w in GIVEN_NAMES | SURNAMES if len(w) == 3 and w not in AMBIGUOUS
)
#: Names found only when capitalised and next to another name (2 letters, or ambiguous).
IN_PAIRS: frozenset[str] = frozenset(
    w for w in GIVEN_NAMES | SURNAMES if len(w) <= 2 or w in AMBIGUOUS
)
